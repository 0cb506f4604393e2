"""The web chat page (``assistant ui``): Gradio over the same turn, threads and stores as the CLI.

``service`` holds what the page does in plain Python (tested without a browser); ``page``
builds the Gradio app. Import ``apps.ui.page`` only where the page is served: it imports
gradio, which the rest of the CLI never needs.
"""
