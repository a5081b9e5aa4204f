"""Modal's named objects on a Dask cluster: Dict, Queue, Volume, Secret, Image."""
