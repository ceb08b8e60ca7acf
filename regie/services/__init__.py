"""La couche de services : les cas d'usage que la CLI, l'API, les pages et le planificateur appellent."""
