"""`vigil run` (the whole loop on one machine) and `vigil traffic` (realistic requests)."""
