"""Networks, the PEARL agent (posterior over z) and the meta-gradient update."""
