"""adversarial-rm-v0: policy vs adversarial reward model (RPO)."""
