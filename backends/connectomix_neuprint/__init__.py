"""The ``neuprint`` backend of connectomix and its local neuPrint emulator."""
