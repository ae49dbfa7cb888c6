"""Stage `baseline`: a scikit-learn Pipeline (preprocessing + a linear model from config)."""
