"""Stage `text_model`: fine-tune a pretrained transformer with Lightning, DDP-ready."""
