"""Test connection: can an application integration get a token and read each room's calendar?"""
