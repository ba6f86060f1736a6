"""The web app (`python -m fomm_tf.app`): Gradio, offline, on the user's own machine; needs the `app` extra."""
