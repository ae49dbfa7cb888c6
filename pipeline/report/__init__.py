"""Stage `report`: one self-contained HTML page about the data, the models and the export."""
