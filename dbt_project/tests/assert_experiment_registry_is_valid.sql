{#- The registry must describe a split: weights of each experiment sum to 1 and exactly one variant is control. -#}
select
    experiment_id,
    sum(weight) as total_weight,
    count(*) filter (where is_control) as controls
from {{ ref('experiments') }}
group by experiment_id
having abs(sum(weight) - 1) > 1e-9 or count(*) filter (where is_control) <> 1
