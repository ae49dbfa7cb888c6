"""Stage `text_model`: fine-tune a pretrained transformer on the text column, DDP-ready."""
