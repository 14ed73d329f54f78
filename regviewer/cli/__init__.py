"""The command line: the parser (`regviewer ...`), what each subcommand does, and
progress on the terminal."""
