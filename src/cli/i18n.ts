/**
 * The wizard speaks the course's language: Korean when the locale is Korean (or --lang ko),
 * English otherwise. Prompts keep the course script's wording and layout.
 */
export interface Messages {
  title: string;
  os: string;
  noImages: string;
  flavor: string;
  flavorLine: (vcpus: number, ramGiB: string, diskGiB: number) => string;
  customFlavor: string;
  vcpus: string;
  ram: string;
  diskSize: string;
  password: string;
  passwordAgain: string;
  passwordMismatch: string;
  network: string;
  networkChoices: [string, string, string];
  extraDisk: string;
  name: string;
  pickNumber: (max: number) => string;
  summary: string;
  sumOs: string;
  sumFlavor: string;
  sumPassword: string;
  sumNetwork: string;
  sumDisk: string;
  sumName: string;
  none: string;
  confirm: string;
  cancelled: string;
  launch: {
    created: (name: string) => string;
    vnc: (addr: string) => string;
    detach: string;
    viewer: (v: string) => string;
    /** Waiting for readiness: which check, then how it was found ready. */
    waiting: (name: string, check: string) => string;
    ready: (name: string, detail: string, ip: string) => string;
  };
}

export const en: Messages = {
  title: 'kumo — create an instance',
  os: 'Operating system to install (number)? :',
  noImages: 'No images yet: build the test image with `kumo image build tiny` or add one with `kumo image import NAME FILE --os "CentOS 7.8"`.',
  flavor: 'Flavor (number)? :',
  flavorLine: (c, r, d) => `CPU ${c}, RAM ${r}, ${d}G Disk`,
  customFlavor: 'custom (enter CPU, RAM and disk size)',
  vcpus: 'Number of CPUs? :',
  ram: 'RAM size (MiB)? :',
  diskSize: 'Disk size (GiB)? :',
  password: 'Root password :',
  passwordAgain: 'Root password (again) :',
  passwordMismatch: 'The two passwords differ; try again.',
  network: 'Network (number) :',
  networkChoices: ['Bridge', 'NAT(default)', 'isolated(testnet)'],
  extraDisk: 'Extra disk size in GiB (0 = none)? :',
  name: 'Instance name? :',
  pickNumber: (max) => `Type a number from 1 to ${max}`,
  summary: 'Installation summary',
  sumOs: 'Operating system',
  sumFlavor: 'flavor',
  sumPassword: 'Root password',
  sumNetwork: 'Network',
  sumDisk: 'Extra disk',
  sumName: 'Instance name',
  none: 'none',
  confirm: 'Install? [y/N] :',
  cancelled: 'Cancelled: nothing was created.',
  launch: {
    created: (n) => `Instance ${n} is starting.`,
    vnc: (a) => `VNC console: ${a} (e.g. vncviewer ${a}; from another machine: ssh -L 5900:${a} root@THIS-HOST)`,
    detach: 'Serial console attached; detach with Ctrl+] (the instance keeps running).',
    viewer: (v) => `Opened ${v} on the VNC console.`,
    waiting: (n, c) => `  waiting for ${n} to be ready (${c})...`,
    ready: (n, d, ip) => (d.startsWith('answers at') ? `${n} ${d}` : `${n} is ready: ${d}${ip ? ` (address ${ip})` : ''}`),
  },
};

export const ko: Messages = {
  title: 'kumo — 인스턴스 생성',
  os: '설치할 운영체제(번호선택)? :',
  noImages: '이미지가 없습니다: `kumo image build tiny` 로 테스트 이미지를 만들거나 `kumo image import 이름 파일 --os "CentOS 7.8"` 로 추가하세요.',
  flavor: 'flavor 선택(번호선택)? :',
  flavorLine: (c, r, d) => `CPU ${c}, RAM ${r}, ${d}G Disk`,
  customFlavor: '직접 입력 (CPU, RAM, 디스크 크기)',
  vcpus: 'CPU 개수? :',
  ram: 'RAM 사이즈(MiB)? :',
  diskSize: '디스크 사이즈(GiB)? :',
  password: '루트패스워드 지정 :',
  passwordAgain: '루트패스워드 확인 :',
  passwordMismatch: '두 패스워드가 다릅니다. 다시 입력하세요.',
  network: '네트워크 지정(번호선택) :',
  networkChoices: ['Bridge', 'NAT(default)', 'isolated(testnet)'],
  extraDisk: '추가디스크 사이즈(GiB, 0 = 없음)? :',
  name: '가상머신의 이름은? :',
  pickNumber: (max) => `1 부터 ${max} 사이의 번호를 입력하세요`,
  summary: '설치확인',
  sumOs: '설치될 운영체제',
  sumFlavor: 'flavor',
  sumPassword: '루트 패스워드',
  sumNetwork: '네트워크',
  sumDisk: '추가 디스크',
  sumName: '인스턴스 이름',
  none: '없음',
  confirm: '설치하시겠습니까? [y/N] :',
  cancelled: '취소되었습니다. 아무것도 만들지 않았습니다.',
  launch: {
    created: (n) => `인스턴스 ${n} 을(를) 시작합니다.`,
    vnc: (a) => `VNC 콘솔: ${a} (예: vncviewer ${a}; 다른 컴퓨터에서는 ssh -L 5900:${a} root@이-호스트)`,
    detach: '시리얼 콘솔에 연결되었습니다. Ctrl+] 로 빠져나옵니다 (인스턴스는 계속 동작합니다).',
    viewer: (v) => `${v} 로 VNC 콘솔을 열었습니다.`,
    waiting: (n, c) => `  ${n} 이(가) 준비되기를 기다립니다 (${c})...`,
    ready: (n, d, ip) => `${n} 준비 완료: ${d}${ip ? ` (주소 ${ip})` : ''}`,
  },
};

export function pickLanguage(flag?: string): Messages {
  // The first locale variable that is set wins, as in POSIX (LC_ALL over LC_MESSAGES over LANG).
  const lang = flag ?? [process.env.LC_ALL, process.env.LC_MESSAGES, process.env.LANG].find((v) => v) ?? '';
  return lang.toLowerCase().startsWith('ko') ? ko : en;
}
