"""Reading and writing models in other libraries' formats."""
