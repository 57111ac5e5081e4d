"""The reverse-mode autodiff engine: ``Tensor`` (tensor.py), the primitives with their
vector-Jacobian products (ops/), numerical gradient checks (gradcheck.py) and the NaN
detector (anomaly.py)."""
