"""Secure provisioning and device control: protocomm (security 0/1/2) and its transports,
Wi-Fi provisioning and ESP Local Control, on both the device and the client side."""
