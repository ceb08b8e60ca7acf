"""Le moteur de rapprochement : règles, score, affectation, actions de la file de revue."""
