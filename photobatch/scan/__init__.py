"""The scan: the pipeline that joins the library and the models, and the folder watcher."""
