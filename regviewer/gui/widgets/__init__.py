"""Parts that docks embed (the parameter editor and its fields, the metric plot, the run-history
tab, a run's inputs, the landmark table, landmark file dialogs and the guided picking flow):
panels may import these, never each other, and these import no panel at run time."""
