"""The affinity-VAE: network, losses and schedules, checkpoints, training and inference (torch)."""
