"""Fine-tuning: a LoRA adapter trained on an exported dataset, from the GGUF base model, written as a GGUF adapter."""
