"""LoRA fine-tuning: chat-format data, training with peft, run tracking, GGUF export.

Needs the ``finetune`` extra (torch, transformers, peft, tensorboardX); nothing here is
imported by the graph, so the assistant runs without it.
"""
