"""The Endpoints controller: one Endpoints object per Service with a selector."""
