"""Our own CalcJobs, only where no existing AiiDA plugin fits (DeePMD training, MLFF MD, ...)."""
