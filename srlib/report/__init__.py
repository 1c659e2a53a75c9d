"""The report behind the notebooks: its experiments, their training runs as resumable tasks, the record
store, figures, the image browser, and the papermill runner that publishes ``conclusion/``."""
