"""The ``cave`` backend of connectomix (FlyWire, FANC, BANC, MICrONS via caveclient) and its CAVE emulator."""
