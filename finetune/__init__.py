"""Dialogue data to LoRA / QLoRA / prompt-tuning adapters, and their evaluation."""
