"""Le moteur de rapprochement : règles, score, affectation, actions de la file de revue."""

import regie  # noqa: F401  (les modules compilés, s'ils sont à jour : regie.natif)
