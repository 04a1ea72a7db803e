"""Model training: feeds that stream gold tables into PyTorch."""
