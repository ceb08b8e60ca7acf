"""Le planificateur (APScheduler 3) : les tâches et leur cadence, rien d'autre."""
