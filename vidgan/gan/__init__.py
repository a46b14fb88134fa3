"""Conditional GANs for image translation: networks, losses, data, training loops, and the
Translator that applies a trained generator (see translator.py for the checkpoint contract)."""
