"""Stand-ins for СМЭВ/ЕПГУ and ИАС МКГУ, for demos and tests."""
