"""Model monitoring: how far the data a champion meets has moved from what it was trained on, and when to retrain.

Plain Python (no Dagster): `ml.monitoring.psi` computes the population stability index, `ml.monitoring.drift`
compares the champion's training window with the newest day (`ml.monitoring.ranks` puts rank inputs on their
day's scale first), `ml.monitoring.retrain` decides whether a retrain is due. The checks and the sensor in
`orchestration/defs/ml/drift.py` only wire them.
"""
