{#-
  A rate shrunk toward a prior: (successes + strength * prior) / (trials + strength), the posterior mean of a
  Beta(strength * prior, strength * (1 - prior)) prior after `trials` Bernoulli draws. A user or item with few
  impressions gets close to the prior; with many, close to its own rate. Null when the prior is null.
-#}
{% macro smoothed_rate(successes, trials, prior, strength=var('feature_ctr_prior_impressions')) -%}
    ({{ successes }} + {{ strength }} * {{ prior }}) / ({{ trials }} + {{ strength }})
{%- endmacro %}
