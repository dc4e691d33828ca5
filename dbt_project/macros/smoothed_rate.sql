{#-
  A rate shrunk toward a prior: (min(successes, trials) + strength * prior) / (trials + strength), the posterior mean of a
  Beta(strength * prior, strength * (1 - prior)) prior after `trials` Bernoulli draws. A user or item with few
  impressions gets close to the prior; with many, close to its own rate. Null when the prior is null.
-#}
{% macro smoothed_rate(successes, trials, prior, strength=var('feature_ctr_prior_impressions')) -%}
    {#- A rate is a share of trials: successes beyond the trials (a click whose impression is outside the window
        or was never sent, a double click) cannot lift it above 1. -#}
    (least({{ successes }}, {{ trials }}) + {{ strength }} * {{ prior }}) / ({{ trials }} + {{ strength }})
{%- endmacro %}
