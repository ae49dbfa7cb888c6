"""Stage `baseline`: a scikit-learn Pipeline (preprocessing + a linear classifier from config)."""
