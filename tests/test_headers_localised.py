"""Headers in other languages (tasks/merge/headers/languages/<code>.yaml):
an export header row of a localised CRM, Outlook or Excel sheet per language,
written with and without accents, each key column placed and every other
column kept under its own header."""

from __future__ import annotations

import unicodedata

import pytest

from tasks.merge.headers import map_headers
from tasks.merge.headers.synonyms import LANGUAGES_DIR

FN, LN, FULL, JOB, WORK, PERSONAL = "First Name", "Last Name", "Full Name", "Job Title", "Work Email", "Personal Email"
PHONE, LI, PLOC = "Phone Number", "LinkedIn Profile", "Person Location"
CN, CD, CLI, IND, EMP, CLOC, DESC, YEAR = ("Company Name", "Company Domain", "Company LinkedIn", "Company Industry",
                                           "Company Employee Count", "Company Location", "Company Description",
                                           "Year Founded")

ROWS = {
    ("es", "people"): {
        "Nombre": FN, "Apellidos": LN, "Nombre completo": FULL, "Correo electrónico": WORK, "Correo": WORK,
        "Correo personal": PERSONAL, "Teléfono": PHONE, "Teléfono móvil": PHONE, "Empresa": CN, "Cargo": JOB,
        "Sitio web": CD, "Perfil de LinkedIn": LI, "Sector": IND, "Número de empleados": EMP, "Ciudad": PLOC,
        "País": PLOC, "Provincia": PLOC, "Dirección": None, "Código postal": None, "Propietario": None,
        "Fecha de creación": None,
    },
    ("es", "company"): {
        "Nombre": CN, "Sitio web": CD, "Teléfono": "Company Phone", "Sector": IND, "Empleados": EMP,
        "Ciudad": CLOC, "País": CLOC, "Descripción": DESC, "Año de fundación": YEAR, "Correo": "Company Email",
    },
    ("de", "people"): {
        "Anrede": None, "Vorname": FN, "Weitere Vornamen": None, "Nachname": LN, "Firma": CN, "Abteilung": None,
        "Position": JOB, "Straße geschäftlich": None, "Ort geschäftlich": CLOC, "Postleitzahl geschäftlich": None,
        "Land/Region geschäftlich": CLOC, "Telefon geschäftlich": PHONE, "Mobiltelefon": PHONE,
        "E-Mail-Adresse": WORK, "E-Mail 2: Adresse": WORK, "Webseite": CD, "Branche": IND,
        "Mitarbeiteranzahl": EMP, "LinkedIn-Profil": LI, "Geburtstag": None, "Notizen": None,
    },
    ("de", "company"): {
        "Firmenname": CN, "Webseite": CD, "Telefon": "Company Phone", "Branche": IND, "Mitarbeiter": EMP,
        "Stadt": CLOC, "Land": CLOC, "Beschreibung": DESC, "Gründungsjahr": YEAR, "PLZ": None, "Straße": None,
    },
    ("fr", "people"): {
        "Civilité": None, "Prénom": FN, "Nom": LN, "Société": CN, "Poste": JOB, "Adresse e-mail": WORK,
        "E-mail personnel": PERSONAL, "Téléphone": PHONE, "Téléphone portable": PHONE, "Site web": CD,
        "Profil LinkedIn": LI, "Secteur d'activité": IND, "Effectif": EMP, "Ville": PLOC, "Pays": PLOC,
        "Code postal": None, "Adresse": None, "Statut": None,
    },
    ("fr", "company"): {
        "Raison sociale": CN, "Site internet": CD, "Standard": "Company Phone", "Secteur": IND, "Effectifs": EMP,
        "Siège social": CLOC, "Description": DESC, "Année de création": YEAR,
    },
    ("pt", "people"): {
        "Nome": FN, "Sobrenome": LN, "Nome completo": FULL, "E-mail": WORK, "E-mail pessoal": PERSONAL,
        "Telefone": PHONE, "Celular": PHONE, "Telemóvel": PHONE, "Empresa": CN, "Cargo": JOB, "Site": None,
        "Website": CD, "Perfil do LinkedIn": LI, "Setor": IND, "Número de funcionários": EMP, "Cidade": PLOC,
        "Endereço": None, "CEP": None, "Responsável": None,
    },
    ("pt", "company"): {
        "Nome": CN, "Razão social": CN, "Website": CD, "Telefone": "Company Phone", "Setor": IND,
        "Funcionários": EMP, "Cidade": CLOC, "Descrição": DESC, "Ano de fundação": YEAR,
    },
    ("it", "people"): {
        "Nome": FN, "Cognome": LN, "Azienda": CN, "Ruolo": JOB, "Indirizzo email": WORK,
        "Email personale": PERSONAL, "Telefono": PHONE, "Cellulare": PHONE, "Sito web": CD,
        "Profilo LinkedIn": LI, "Settore": IND, "Numero di dipendenti": EMP, "Città": PLOC, "Provincia": PLOC,
        "Indirizzo": None, "CAP": None, "Proprietario": None,
    },
    ("it", "company"): {
        "Ragione sociale": CN, "Sito internet": CD, "Centralino": "Company Phone", "Settore": IND,
        "Dipendenti": EMP, "Sede legale": CLOC, "Descrizione": DESC, "Anno di fondazione": YEAR,
    },
    ("nl", "people"): {
        "Aanhef": None, "Voornaam": FN, "Tussenvoegsel": None, "Achternaam": LN, "Bedrijfsnaam": CN,
        "Functie": JOB, "E-mailadres": WORK, "Telefoonnummer": PHONE, "Mobiel": PHONE, "Website": CD,
        "LinkedIn profiel": LI, "Branche": IND, "Aantal medewerkers": EMP, "Plaats": PLOC, "Land": PLOC,
        "Postcode": None, "Adres": None, "Eigenaar": None,
    },
    ("nl", "company"): {
        "Naam": CN, "Website": CD, "Telefoon": "Company Phone", "Bedrijfstak": IND, "Medewerkers": EMP,
        "Vestigingsplaats": CLOC, "Omschrijving": DESC, "Oprichtingsjaar": YEAR,
    },
}


def without_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def test_six_languages_have_a_synonym_file():
    assert {p.stem for p in LANGUAGES_DIR.glob("*.yaml")} >= {"es", "de", "fr", "pt", "it", "nl"}
    assert {language for language, _ in ROWS} == {"es", "de", "fr", "pt", "it", "nl"}


@pytest.mark.parametrize(("language", "table_type"), list(ROWS), ids=[" ".join(k) for k in ROWS])
@pytest.mark.parametrize("spelling", ["as written", "without accents", "upper case"])
def test_localised_export_headers(language, table_type, spelling):
    expected = ROWS[(language, table_type)]
    change = {"as written": str, "without accents": without_accents, "upper case": str.upper}[spelling]
    headers = [change(h) for h in expected]
    mappings, _ = map_headers(headers, table_type)
    got = {m.header: (m.field, m.how) for m in mappings}
    for header, field in zip(headers, expected.values()):
        assert got[header][0] == field, (header, got[header], field)
        assert got[header][1] == ("synonym" if field else "unmapped"), (header, got[header])
