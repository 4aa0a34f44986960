"""kbflow's application shell: the command line, the folder watcher, the reports server and the progress bar."""
