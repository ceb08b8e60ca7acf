"""Les pages de revue dans un vrai Chromium sans tête (Debian), piloté par Playwright.

Le serveur est uvicorn sur 127.0.0.1 dans un fil ; chaque page est capturée (PNG) dans
var/captures/ pour la relire à l'œil. Sans /usr/bin/chromium le test est sauté, sauf en CI.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from argon2 import PasswordHasher
from sqlalchemy import select

from regie.application import Application
from regie.erreurs import FichierRefuse
from regie.pages import auth
from regie.parametres import Environnement, charger_configuration
from regie.registre.modeles import Audit, EtatFacture, Facture
from tests.conftest import CONFIG_EXEMPLE, RACINE
from tests.test_pages_revue import F1, F2, MDP, creer_comptes, fastapi_pages, virement_ambigu

pytestmark = pytest.mark.navigateur

CHROMIUM = Path("/usr/bin/chromium")
ARGUMENTS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CAPTURES = RACINE / "var" / "captures"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium absent (/usr/bin/chromium) : le paquet Debian « chromium » est requis en CI")
        pytest.skip("Chromium absent (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        navigateur = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGUMENTS)
        yield navigateur
        navigateur.close()


@pytest.fixture
def application(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Application]:
    monkeypatch.setattr(auth, "_HACHEUR", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    url = f"sqlite:///{tmp_path / 'regie.db'}"
    env = Environnement(database_url=url, config=CONFIG_EXEMPLE, donnees=tmp_path / "var")
    app = Application(charger_configuration(CONFIG_EXEMPLE), env, url=url)
    app.initialiser()
    creer_comptes(app)
    yield app
    app.moteur.dispose()


@pytest.fixture
def serveur(application: Application) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(fastapi_pages(application), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    srv = uvicorn.Server(config)
    fil = threading.Thread(target=srv.run, daemon=True)
    fil.start()
    limite = time.monotonic() + 15
    while not srv.started:
        if time.monotonic() > limite or not fil.is_alive():
            pytest.fail("le serveur uvicorn n'a pas démarré")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    fil.join(timeout=10)


@pytest.fixture
def page(chromium: Any, serveur: str) -> Iterator[Any]:
    contexte = chromium.new_context(base_url=serveur, viewport={"width": 1366, "height": 768}, locale="fr-FR")
    contexte.set_default_timeout(10_000)
    p = contexte.new_page()
    yield p
    contexte.close()


def capturer(page: Any, nom: str) -> None:
    CAPTURES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(CAPTURES / f"{nom}.png"), full_page=True)


def se_connecter(page: Any, identifiant: str, *, capture: str | None = None) -> None:
    """Au clavier seulement : le champ identifiant a le focus, Tab, puis Entrée."""
    page.goto("/")
    assert "/connexion" in page.url
    page.get_by_label("Identifiant").wait_for()
    if capture:
        capturer(page, capture)
    page.keyboard.type(identifiant)
    page.keyboard.press("Tab")
    page.keyboard.type(MDP)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Tableau de bord").wait_for()


def test_un_agent_affecte_un_virement_a_deux_factures_et_voit_les_deux_payees_et_l_audit(
        page: Any, application: Application, tmp_path: Path) -> None:
    sc, pid = virement_ambigu(application, tmp_path)
    sc.cheques(("RC-1", "1", "DUPONT JEAN", "12.00", "F-INCONNUE-9"))
    with pytest.raises(FichierRefuse):  # un fichier refusé, pour la page des fichiers
        sc.importer("cheque", b"remise;numero_cheque;tireur\r\nRC-2;1;X\r\n", "bordereau_casse.csv")

    se_connecter(page, "agent", capture="01_connexion")
    assert page.get_by_text("2 paiements en attente").is_visible()
    capturer(page, "02_tableau_de_bord")

    page.get_by_role("link", name="File de revue").click()
    page.get_by_role("heading", name="File de revue").wait_for()
    capturer(page, "03_file_de_revue")
    page.get_by_label("Code").select_option("AMBIGU")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_url("**/file?code=AMBIGU*")
    assert page.get_by_text("1 paiement", exact=True).is_visible()

    page.get_by_role("link", name="00012345678/2026-05-15/0000001/1").click()
    page.get_by_role("heading", name="Factures suggérées").wait_for()
    assert page.get_by_text("citée dans le libellé").first.is_visible()
    capturer(page, "04_paiement_ambigu")

    # Les deux suggestions préremplissent les numéros ; l'agent saisit les montants.
    assert page.get_by_label("Facture 1", exact=True).input_value() == F1
    assert page.get_by_label("Facture 2", exact=True).input_value() == F2
    page.get_by_label("Montant 1 en euros").fill("77,00")
    page.get_by_label("Montant 2 en euros").fill("42,00")
    page.get_by_label("Note (facultative)").first.fill("Virement des factures de mai")
    page.get_by_role("button", name="Vérifier la répartition…").click()
    page.get_by_role("heading", name="Confirmer : affecter à une ou plusieurs factures").wait_for()
    assert page.get_by_text("119,00", exact=False).first.is_visible()
    capturer(page, "05_confirmation")
    page.get_by_role("button", name="Confirmer").click()

    page.get_by_text("Décision enregistrée").wait_for()
    capturer(page, "06_paiement_affecte")
    affectations = page.locator("section", has=page.get_by_role("heading", name="Affectations", exact=True))
    assert affectations.get_by_text("payée", exact=True).count() == 2

    page.get_by_role("link", name="D004512").first.click()
    page.get_by_role("heading", name="Compte famille").wait_for()
    factures = page.locator("section", has=page.get_by_role("heading", name="Factures"))
    assert factures.get_by_text("payée", exact=True).count() == 2
    capturer(page, "07_compte_famille")

    page.get_by_role("link", name="Journal d'audit").click()
    ligne = page.get_by_role("row").filter(has_text="Virement des factures de mai")
    assert ligne.get_by_text("agent", exact=True).is_visible()
    assert ligne.get_by_text("affecter", exact=True).is_visible()
    capturer(page, "08_journal_audit")

    page.get_by_role("link", name="Fichiers").click()
    page.get_by_role("cell", name="004_bordereau_casse.csv").wait_for()
    capturer(page, "09_fichiers")
    page.get_by_role("link", name="Titres et acquits").click()
    page.get_by_role("heading", name="Bordereaux").wait_for()
    capturer(page, "10_titres")

    with application.moteur.connect() as c:
        assert c.execute(select(EtatFacture.statut).join(Facture, Facture.id == EtatFacture.facture_id)
                         .where(Facture.numero.in_((F1, F2)))).scalars().all() == [
            "payee", "payee"]
        assert c.execute(select(Audit.qui, Audit.action, Audit.objet_id)).all() == [("agent", "affecter", str(pid))]


def test_un_compte_consultation_ne_peut_pas_decider(page: Any, application: Application, tmp_path: Path) -> None:
    _, pid = virement_ambigu(application, tmp_path)
    se_connecter(page, "lecteur")
    page.goto(f"/paiements/{pid}")
    page.get_by_text("permet de consulter, pas de décider").wait_for()
    assert page.get_by_role("button", name="Vérifier la répartition…").count() == 0
    capturer(page, "11_paiement_consultation")
    # Même en fabriquant le formulaire (avec le bon jeton CSRF), le serveur refuse.
    csrf = page.locator("input[name=csrf]").first.input_value()
    page.evaluate("""([pid, csrf, f]) => {
        const form = document.createElement('form');
        form.method = 'post'; form.action = `/paiements/${pid}/decisions/affecter`;
        for (const [k, v] of Object.entries({csrf, facture_1: f, montant_1: '77,00', confirme: 'oui'})) {
            const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; form.appendChild(i);
        }
        document.body.appendChild(form); form.submit();
    }""", [pid, csrf, F1])
    page.get_by_role("heading", name="Action refusée").wait_for()
    assert page.get_by_text("ne permet pas la décision").is_visible()
    capturer(page, "12_refus_role")
    with application.moteur.connect() as c:
        assert c.execute(select(EtatFacture.statut).join(Facture, Facture.id == EtatFacture.facture_id)
                         .where(Facture.numero == F1)).scalar_one() == "emise"


def test_un_formulaire_forge_sans_jeton_csrf_est_refuse(page: Any, application: Application,
                                                          tmp_path: Path) -> None:
    _, pid = virement_ambigu(application, tmp_path)
    se_connecter(page, "agent")
    page.goto(f"/paiements/{pid}")
    page.get_by_role("heading", name="Décider").wait_for()
    # Le formulaire d'affectation, privé de son jeton : la session est bien là, mais pas le jeton.
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(i => i.remove())")
    page.get_by_label("Montant 1 en euros").fill("77,00")
    page.get_by_role("button", name="Vérifier la répartition…").click()
    page.get_by_role("heading", name="Action refusée").wait_for()
    assert page.get_by_text("jeton de sécurité absent ou périmé").is_visible()
    capturer(page, "13_refus_csrf")
    with application.moteur.connect() as c:
        assert c.execute(select(EtatFacture.statut).join(Facture, Facture.id == EtatFacture.facture_id)
                         .where(Facture.numero == F1)).scalar_one() == "emise"
        assert c.execute(select(Audit.id)).first() is None
