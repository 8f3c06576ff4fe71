"""mfr.losses"""
