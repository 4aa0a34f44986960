"""Answer: question files, retrieval, the keyword index, prompts, backends, generation, models and adapters."""
