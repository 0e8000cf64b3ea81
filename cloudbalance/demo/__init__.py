"""The bundled demo: the sample data generator and a ready infrastructure repository."""
