"""Test peers that compose several services (here, where importing services is allowed)."""
