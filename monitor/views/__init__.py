"""What a person reads: the live dashboard and the session report. Views read results, session state or the
session CSV, never a model object."""
