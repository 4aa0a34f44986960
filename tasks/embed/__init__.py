"""Embed: the Embedder protocol, sentence-transformers, and the bundled model's ONNX/OpenVINO export."""
