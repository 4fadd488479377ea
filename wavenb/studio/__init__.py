"""The Studio widget: make videos from an image and a prompt in a notebook."""
