"""The network: AlexNet, its losses, precision policy and the fused OOD head."""
