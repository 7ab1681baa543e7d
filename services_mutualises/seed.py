"""The demonstration data of the catalogue: sites, offerings, sharing keys, fibre reserves.

Prices are illustrative orders of magnitude (euros excluding VAT), not a tariff: the CTM sets
its own. ``alone`` is what a member would typically pay buying the same service alone.
Coordinates are approximate (WGS 84).
"""

from __future__ import annotations

from typing import Any

# organisation, name, address, latitude, longitude, fibre reachable
SITES: list[tuple[str, str, str, float, float, bool]] = [
    ("lamentin", "Hôtel de ville du Lamentin", "Rue Ernest-André, 97232 Le Lamentin",
     14.6106, -60.9997, True),
    ("lamentin", "Groupe scolaire de Long-Pré (cantine)", "Quartier Long-Pré, 97232 Le Lamentin",
     14.5800, -60.9800, True),
    ("lamentin", "Centre technique municipal", "Zone de la Lézarde, 97232 Le Lamentin",
     14.6190, -60.9850, False),
    ("fort-de-france", "Hôtel de ville de Fort-de-France", "Rue Victor-Sévère, 97200 "
     "Fort-de-France", 14.6037, -61.0689, True),
    ("fort-de-france", "Médiathèque du Centre", "Rue de la Liberté, 97200 Fort-de-France",
     14.6010, -61.0700, True),
    ("schoelcher", "Hôtel de ville de Schœlcher", "Place Schœlcher, 97233 Schœlcher",
     14.6145, -61.0905, True),
    ("robert", "Hôtel de ville du Robert", "Boulevard Henri-Auguste, 97231 Le Robert",
     14.6780, -60.9410, True),
    ("marin", "Hôtel de ville du Marin", "Rue Osman-Duquesnay, 97290 Le Marin",
     14.4680, -60.8700, True),
    ("sdis", "État-major du SDIS", "Quartier Désormeaux, 97200 Fort-de-France",
     14.6230, -61.0450, True),
    ("sdis", "Centre de secours de La Trinité", "Route de Cosmy, 97220 La Trinité",
     14.7370, -60.9650, True),
    ("ctm", "Hôtel de la Collectivité", "Rue Gaston-Defferre, 97200 Fort-de-France",
     14.6070, -61.0560, True),
    ("ctm", "Data centre territorial", "Zone de Champigny, 97224 Ducos",
     14.5740, -60.9720, True),
]

# code, name, delegation, latitude, longitude
POPS: list[tuple[str, str, str, float, float]] = [
    ("FDF", "Fort-de-France Centre", "Délégation Centre", 14.6040, -61.0670),
    ("SCH", "Schœlcher", "Délégation Centre", 14.6150, -61.0880),
    ("LAM", "Le Lamentin Bourg", "Délégation Centre", 14.6090, -60.9980),
    ("DUC", "Ducos Champigny", "Délégation Sud", 14.5747, -60.9747),
    ("RSA", "Rivière-Salée", "Délégation Sud", 14.5270, -60.9760),
    ("MAR", "Le Marin", "Délégation Sud", 14.4690, -60.8680),
    ("FRA", "Le François", "Délégation Sud", 14.6160, -60.9030),
    ("ROB", "Le Robert", "Délégation Centre", 14.6790, -60.9400),
    ("TRI", "La Trinité", "Délégation Centre", 14.7380, -60.9630),
    ("SPI", "Saint-Pierre", "Délégation Centre", 14.7420, -61.1760),
]

# code, from, to, length (km), pairs, pairs already allocated to other networks
CABLES: list[tuple[str, str, str, float, int, int]] = [
    ("C-FDF-SCH", "FDF", "SCH", 3.2, 12, 4),
    ("C-FDF-LAM", "FDF", "LAM", 8.9, 24, 10),
    ("C-FDF-SPI", "FDF", "SPI", 27.5, 12, 2),
    ("C-LAM-DUC", "LAM", "DUC", 5.1, 12, 3),
    ("C-LAM-ROB", "LAM", "ROB", 12.4, 12, 5),
    ("C-ROB-TRI", "ROB", "TRI", 9.8, 8, 2),
    ("C-ROB-FRA", "ROB", "FRA", 8.3, 8, 1),
    ("C-DUC-RSA", "DUC", "RSA", 6.0, 12, 6),
    ("C-RSA-MAR", "RSA", "MAR", 19.7, 8, 2),
    ("C-FRA-MAR", "FRA", "MAR", 24.1, 6, 1),
]


def _ch(name: str, label: str, values: list[str], default: str | None = None
        ) -> dict[str, Any]:
    """A characteristic with allowed values (an empty list: free text)."""
    return {"name": name, "label": label, "values": values,
            "default": default if default is not None else (values[0] if values else "")}


SLA = _ch("sla", "Niveau de service", ["standard", "renforcé", "critique"])

# code, name, description, provisioner, two sites, characteristics, one-off, monthly,
# alone one-off, alone monthly (cents), usage characteristic, sharing key
OFFERINGS: list[dict[str, Any]] = [
    {"code": "fibre-noire", "name": "Paire de fibre noire entre deux sites",
     "description": "Une paire de fibre optique passive des réserves de la CTM, de bout en "
                    "bout entre deux sites de l'organisation, allouée sur le chemin le plus "
                    "court entre leurs points de présence.",
     "provisioner": "fibre", "two_sites": True, "characteristics": [SLA],
     "one_off": 150000, "monthly": 35000, "alone_one_off": 450000, "alone_monthly": 120000,
     "usage": None, "sharing": "subscriber"},
    {"code": "acces-thd", "name": "Accès Internet très haut débit",
     "description": "Accès Internet symétrique sur le réseau multiservices, collecté au "
                    "data centre territorial.",
     "provisioner": "network_team", "two_sites": False,
     "characteristics": [_ch("debit_mbps", "Débit (Mbit/s)", ["100", "500", "1000"]), SLA],
     "one_off": 50000, "monthly": 60000, "alone_one_off": 120000, "alone_monthly": 95000,
     "usage": "debit_mbps", "sharing": "usage"},
    {"code": "vpn-intersites", "name": "Réseau privé virtuel inter-sites",
     "description": "Un réseau privé (VPN de niveau 3) reliant les sites de l'organisation "
                    "sur le réseau multiservices.",
     "provisioner": "network_team", "two_sites": False,
     "characteristics": [_ch("nombre_sites", "Nombre de sites", ["2", "5", "10", "20"]), SLA],
     "one_off": 80000, "monthly": 40000, "alone_one_off": 200000, "alone_monthly": 90000,
     "usage": "nombre_sites", "sharing": "usage"},
    {"code": "lien-secours-sdis", "name": "Lien de secours du SDIS",
     "description": "Un second lien, par un autre chemin, entre un centre de secours et "
                    "l'état-major du SDIS.",
     "provisioner": "network_team", "two_sites": True,
     "characteristics": [_ch("debit_mbps", "Débit (Mbit/s)", ["100", "1000"]),
                         _ch("sla", "Niveau de service", ["critique"])],
     "one_off": 100000, "monthly": 45000, "alone_one_off": 300000, "alone_monthly": 110000,
     "usage": None, "sharing": "subscriber"},
    {"code": "hebergement", "name": "Hébergement au data centre territorial",
     "description": "Machines virtuelles hébergées au data centre territorial, sauvegardées.",
     "provisioner": "datacentre_team", "two_sites": False,
     "characteristics": [_ch("vcpu", "Processeurs virtuels", ["2", "4", "8", "16"]),
                         _ch("stockage_go", "Stockage (Go)", ["100", "500", "1000"])],
     "one_off": 20000, "monthly": 80000, "alone_one_off": 60000, "alone_monthly": 150000,
     "usage": "vcpu", "sharing": "usage"},
    {"code": "archivage", "name": "Espace d'archivage électronique",
     "description": "L'espace de l'organisation au service d'archivage électronique de la "
                    "CTM (action 22), avec son volume.",
     "provisioner": "archive_space", "two_sites": False,
     "characteristics": [_ch("quota_gb", "Volume (Go)", ["50", "200", "1000"])],
     "one_off": 0, "monthly": 30000, "alone_one_off": 500000, "alone_monthly": 90000,
     "usage": None, "sharing": "population"},
    {"code": "martinique-connect", "name": "Martinique Connect pour une application",
     "description": "La connexion des usagers à une application de l'organisation par "
                    "Martinique Connect (action 23) : un client OpenID Connect enregistré "
                    "pour l'application.",
     "provisioner": "oidc_client", "two_sites": False,
     "characteristics": [_ch("application", "Nom de l'application", []),
                         _ch("redirect_uris", "Adresses de redirection (une par ligne)", [])],
     "one_off": 0, "monthly": 15000, "alone_one_off": 300000, "alone_monthly": 40000,
     "usage": None, "sharing": "equal"},
]
