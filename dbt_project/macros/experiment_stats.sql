{#-
  Sufficient statistics of every experiment metric (var experiment_metrics) per experiment, variant and the given
  grouping columns, from per-unit rows of int_experiment_unit_days.

  For each unit a metric has up to four values: m (the metric, or a ratio's numerator), d (a ratio's denominator),
  x and xd (the same over the pre-period: the CUPED covariate). The sums of these and of all their pairwise
  products are enough for Welch/delta-method tests, CUPED and ratio CUPED (Deng et al. 2013; 2018) without any
  unit-level row leaving the warehouse. Mean and proportion metrics leave the denominator columns null.
  Sums are taken as decimals (exact, so reruns agree), then returned as doubles.

  Args:
    relation: the per-unit rows.
    group_by: extra grouping column expressions, e.g. ['activity_date as as_of_date'].
    prefix: column prefix of the post-exposure values ('cum_' for running totals, '' for that day alone).
-#}
{% macro experiment_stats(relation, group_by=[], prefix='cum_') -%}
{%- set products = [
    ('m', 'm', 'sum_squares'), ('d', 'd', 'denominator_sum_squares'), ('m', 'd', 'main_denominator_sum_product'),
    ('x', 'x', 'covariate_sum_squares'), ('m', 'x', 'main_covariate_sum_product'),
    ('xd', 'xd', 'covariate_denominator_sum_squares'), ('x', 'xd', 'covariate_covariate_denominator_sum_product'),
    ('m', 'xd', 'main_covariate_denominator_sum_product'), ('d', 'x', 'denominator_covariate_sum_product'),
    ('d', 'xd', 'denominator_covariate_denominator_sum_product'),
] -%}
{%- set singles = [('m', 'sum'), ('d', 'denominator_sum'), ('x', 'covariate_sum'), ('xd', 'covariate_denominator_sum')] -%}
{%- for metric in var('experiment_metrics') %}
{%- set is_ratio = metric.kind == 'ratio' %}
{%- set value = ('cast(' ~ prefix ~ metric.numerator ~ ' > 0 as integer)') if metric.kind == 'proportion'
                else (prefix ~ metric.numerator) %}
{%- set covariate = ('cast(pre_' ~ metric.numerator ~ ' > 0 as integer)') if metric.kind == 'proportion'
                    else ('pre_' ~ metric.numerator) %}
select
    experiment_id,
    variant,
    {%- for column in group_by %}
    {{ column }},
    {%- endfor %}
    '{{ metric.name }}' as metric,
    '{{ metric.kind }}' as metric_kind,
    '{{ metric.role }}' as metric_role,
    cast({{ metric.get('non_inferiority_margin', 'null') }} as double) as non_inferiority_margin,
    {{ metric.get('higher_is_better', true) }} as higher_is_better,
    count(*) as n,
    {%- for name, column in singles %}
    {%- if name in ('d', 'xd') and not is_ratio %}
    cast(null as double) as {{ column }},
    {%- else %}
    {{ exact_sum(_experiment_value(name, value, covariate, metric, prefix), scale=4, precision=38) }} as {{ column }},
    {%- endif %}
    {%- endfor %}
    {%- for a, b, column in products %}
    {%- if ('d' in (a, b) or 'xd' in (a, b)) and not is_ratio %}
    cast(null as double) as {{ column }}{{ "," if not loop.last }}
    {%- else %}
    {{ exact_sum(_experiment_value(a, value, covariate, metric, prefix) ~ ' * '
                 ~ _experiment_value(b, value, covariate, metric, prefix), scale=8, precision=38) }}
        as {{ column }}{{ "," if not loop.last }}
    {%- endif %}
    {%- endfor %}
from {{ relation }}
group by all
{%- if not loop.last %}
union all
{%- endif %}
{%- endfor %}
{%- endmacro %}

{#- One of a unit's four values of a metric, as an exact decimal (experiment_factor_type). -#}
{% macro _experiment_value(name, value, covariate, metric, prefix) -%}
    {%- if name == 'm' -%} cast({{ value }} as {{ experiment_factor_type() }})
    {%- elif name == 'x' -%} cast({{ covariate }} as {{ experiment_factor_type() }})
    {%- elif name == 'd' -%} cast({{ prefix }}{{ metric.denominator }} as {{ experiment_factor_type() }})
    {%- else -%} cast(pre_{{ metric.denominator }} as {{ experiment_factor_type() }})
    {%- endif -%}
{%- endmacro %}

{#- The decimal type of the factors of a product summed exactly. DuckDB: width 38, since it gives the product of two
    DECIMAL(18, 4) the type DECIMAL(18, 8), which overflows once a product passes 1e10 (e.g. 100,000 seconds
    squared). Spark: width 18, since it gives that product DECIMAL(37, 8) (exact) but rounds the product of two
    DECIMAL(38, 4) to 6 decimals. -#}
{% macro experiment_factor_type() -%}
    {{ return(adapter.dispatch('experiment_factor_type')()) }}
{%- endmacro %}

{% macro default__experiment_factor_type() -%}
    decimal(38, 4)
{%- endmacro %}

{% macro spark__experiment_factor_type() -%}
    decimal(18, 4)
{%- endmacro %}
