"""The use cases every face (ui/, api/, cli/, serve/) calls."""
