"""Dataset: question/answer pairs written by the model, RAFT examples and fine-tuning formats."""
