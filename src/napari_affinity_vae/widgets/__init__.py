"""napari dock widgets (Qt); each talks to the others only through the shared session state."""
