"""Network planning: group-key service node location (p-median, seed 002) and QKD provisioning for
federated learning (two-stage stochastic programming, seed 001)."""
