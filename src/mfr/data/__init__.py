"""mfr.data"""
