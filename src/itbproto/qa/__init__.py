"""Quality assurance helpers shipped with the library: hypothesis strategies derived from the schemas."""
